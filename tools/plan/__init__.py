"""`oibeam plan`: what a fetch would select, how much of it still answers, and
what fetching it would cost, before anything is fetched."""
