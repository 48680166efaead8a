"""ShapesWorld: a deterministic generator of small images with known scene graphs and every caption kind
(DESIGN.md section 5).

Entry points: ``vlforge.common.shapes.build.build_shapes_store(path, num_images, seed, image_size=64,
**knobs)`` (or ``vlforge-store shapes``), ``build.make_record(index, seed, config)`` and
``build.generate_records(...)``; the knobs are the fields of ``config.ShapesWorldConfig``. One concern per
module: ``vocabulary`` (words, colours, synonyms; imports nothing heavy, so metrics can use it without PIL),
``scene`` (scene graphs), ``render`` (pixels), ``grammar`` / ``captions`` (gt short, descriptive, dense),
``alt_text``, ``negatives``, ``facts``, ``queries``, ``qa``, ``splits``, ``build``.
"""
