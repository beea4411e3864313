"""Stage 2, join: images, labels and boxes joined by ImageID bucket into one row per
image.
"""
