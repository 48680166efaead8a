"""COCO's 80 object classes with the words captions use for them, for CHAIR on COCO (Rohrbach et al. 2018).

Written for vlforge after the reference protocol (LisaAnne/Hallucination: one synonym line per class, captions
singularised, two-word names read as one word, qualified animals and vehicles read as the animal or vehicle, a
toilet seat read as a toilet); the word lists are our own, so CHAIR figures computed with this table are comparable
with each other, not with figures from another synonym list.

:data:`COCO_OBJECTS` maps each class name (as in COCO's ``instances`` categories) to its words, singular and plural
(:func:`with_plurals`). Multi-word entries ("teddy bear", "baby elephant") are matched before single words, so "a
teddy bear" names a teddy bear and not a bear, "a hot dog" no dog, "a baby elephant" no person.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

_ANIMALS = ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe")


def _qualified(animal: str) -> tuple[str, ...]:
    """'baby bird' / 'adult bird' name the bird, not a person (the reference's qualifier rule)."""
    return (f"baby {animal}", f"adult {animal}")


_COCO_WORDS: dict[str, tuple[str, ...]] = {
    "person": ("person", "man", "woman", "boy", "girl", "child", "kid", "baby", "guy", "lady", "gentleman",
               "adult", "teenager", "toddler", "player", "skier", "surfer", "skateboarder", "snowboarder",
               "rider", "pedestrian", "batter", "catcher", "pitcher", "umpire", "chef", "worker",
               "officer", "policeman", "soldier", "student", "tourist", "passenger", "daughter", "son", "mother",
               "father", "friend", "human", "audience", "crowd", "family", "team"),
    "bicycle": ("bicycle", "bike", "pushbike"),
    "car": ("car", "automobile", "sedan", "taxi", "cab", "suv", "minivan", "coupe", "hatchback"),
    "motorcycle": ("motorcycle", "motorbike", "motor bike", "motor cycle", "scooter", "moped", "dirt bike"),
    "airplane": ("airplane", "aeroplane", "plane", "air plane", "jet", "airliner", "aircraft", "jetliner",
                 "passenger jet", "passenger plane"),
    "bus": ("bus", "minibus", "trolley", "double decker"),
    "train": ("train", "locomotive", "tram", "subway", "railcar", "passenger train", "freight train"),
    "truck": ("truck", "lorry", "pickup", "van", "tractor", "firetruck", "fire truck"),
    "boat": ("boat", "ship", "sailboat", "yacht", "canoe", "kayak", "ferry", "raft", "dinghy", "vessel",
             "motorboat", "speedboat"),
    "traffic light": ("traffic light", "traffic signal", "stop light", "stoplight", "street light",
                      "streetlight"),
    "fire hydrant": ("fire hydrant", "hydrant"),
    "stop sign": ("stop sign",),
    "parking meter": ("parking meter", "meter"),
    "bench": ("bench", "park bench"),
    "bird": ("bird", "pigeon", "seagull", "gull", "duck", "goose", "swan", "parrot", "owl", "eagle", "hawk",
             "crow", "sparrow", "chicken", "hen", "rooster", "penguin", "flamingo", "pelican",
             *_qualified("bird")),
    "cat": ("cat", "kitten", "kitty", *_qualified("cat")),
    "dog": ("dog", "puppy", "pup", "doggy", "hound", "terrier", "poodle", "labrador", "retriever", "bulldog",
            *_qualified("dog")),
    "horse": ("horse", "pony", "foal", "stallion", "mare", *_qualified("horse")),
    "sheep": ("sheep", "lamb", "ram", "ewe", *_qualified("sheep")),
    "cow": ("cow", "cattle", "calf", "bull", "ox", *_qualified("cow")),
    "elephant": ("elephant", *_qualified("elephant")),
    "bear": ("bear", "grizzly", "cub", "polar bear", "brown bear", "black bear", *_qualified("bear")),
    "zebra": ("zebra", *_qualified("zebra")),
    "giraffe": ("giraffe", *_qualified("giraffe")),
    "backpack": ("backpack", "rucksack", "knapsack", "back pack"),
    "umbrella": ("umbrella", "parasol"),
    "handbag": ("handbag", "purse", "hand bag", "clutch"),
    "tie": ("tie", "necktie", "bow tie"),
    "suitcase": ("suitcase", "suit case", "luggage", "baggage"),
    "frisbee": ("frisbee", "flying disc"),
    "skis": ("skis", "ski"),
    "snowboard": ("snowboard",),
    "sports ball": ("sports ball", "ball", "football", "soccer ball", "baseball", "basketball", "tennis ball",
                    "volleyball", "softball"),
    "kite": ("kite",),
    "baseball bat": ("baseball bat", "bat"),
    "baseball glove": ("baseball glove", "glove", "mitt"),
    "skateboard": ("skateboard", "skate board"),
    "surfboard": ("surfboard", "surf board", "longboard", "paddleboard"),
    "tennis racket": ("tennis racket", "racket", "racquet"),
    "bottle": ("bottle",),
    "wine glass": ("wine glass", "wineglass"),
    "cup": ("cup", "mug", "teacup", "coffee cup"),
    "fork": ("fork",),
    "knife": ("knife",),
    "spoon": ("spoon",),
    "bowl": ("bowl",),
    "banana": ("banana",),
    "apple": ("apple",),
    "sandwich": ("sandwich", "burger", "hamburger", "panini"),
    "orange": ("orange", "tangerine", "mandarin"),
    "broccoli": ("broccoli",),
    "carrot": ("carrot",),
    "hot dog": ("hot dog", "hotdog", "frankfurter", "sausage"),
    "pizza": ("pizza",),
    "donut": ("donut", "doughnut"),
    "cake": ("cake", "cupcake", "cheesecake"),
    "chair": ("chair", "stool", "armchair", "recliner", "highchair"),
    "couch": ("couch", "sofa", "loveseat", "settee"),
    "potted plant": ("potted plant", "house plant", "houseplant", "plant", "flowerpot", "flower pot"),
    "bed": ("bed",),
    "dining table": ("dining table", "table", "desk"),
    "toilet": ("toilet", "urinal", "commode", "toilet seat"),
    "tv": ("tv", "television", "monitor", "tv set", "television set"),
    "laptop": ("laptop", "computer", "notebook", "laptop computer"),
    "mouse": ("mouse",),
    "remote": ("remote", "remote control", "controller"),
    "keyboard": ("keyboard",),
    "cell phone": ("cell phone", "cellphone", "phone", "smartphone", "mobile phone", "iphone", "telephone"),
    "microwave": ("microwave",),
    "oven": ("oven", "stove", "stove top oven"),
    "toaster": ("toaster",),
    "sink": ("sink", "basin"),
    "refrigerator": ("refrigerator", "fridge", "freezer"),
    "book": ("book", "novel", "textbook"),
    "clock": ("clock",),
    "vase": ("vase",),
    "scissors": ("scissors",),
    "teddy bear": ("teddy bear", "teddybear", "teddy", "stuffed bear", "stuffed animal"),
    "hair drier": ("hair drier", "hair dryer", "hairdryer", "blow dryer", "blowdryer"),
    "toothbrush": ("toothbrush", "tooth brush"),
}

_IRREGULAR_PLURALS = {
    "person": "people", "man": "men", "woman": "women", "child": "children", "gentleman": "gentlemen",
    "policeman": "policemen", "mouse": "mice", "knife": "knives", "calf": "calves", "ox": "oxen",
    "goose": "geese", "sheep": "sheep", "cattle": "cattle", "scissors": "scissors", "skis": "skis",
    "broccoli": "broccoli", "luggage": "luggage", "baggage": "baggage", "aircraft": "aircraft",
    "audience": "audiences", "crowd": "crowds",
}


def plural(word: str) -> str:
    """English plural of a (lower-case) noun: irregulars, then -s/-x/-z/-ch/-sh + es, consonant + y -> ies, + s."""
    if word in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[word]
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def with_plurals(table: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Each entry's words followed by their plurals (the last word of a phrase is made plural)."""
    out = {}
    for name, words in table.items():
        forms: list[str] = []
        for word in words:
            head, _, last = word.rpartition(" ")
            for form in (word, f"{head} {plural(last)}" if head else plural(last)):
                if form not in forms:
                    forms.append(form)
        out[name] = tuple(forms)
    return out


COCO_OBJECTS: dict[str, tuple[str, ...]] = with_plurals(_COCO_WORDS)
