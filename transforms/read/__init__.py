"""Stage 1, read: plan the input CSVs, parse them into Arrow tables, validate every
row, give rejected rows their lines; class names, hierarchies, earlier images
tables.
"""
