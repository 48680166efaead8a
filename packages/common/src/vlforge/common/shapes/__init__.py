"""ShapesWorld: a deterministic generator of small images with known scene graphs and every caption kind.

See DESIGN.md section 5. The vocabulary (``vlforge.common.shapes.vocabulary``) imports nothing heavy, so metrics and
query generators can use it without PIL.
"""
