"""Stage 4, select: which images to fetch, decided on whole tables,
deterministically."""
