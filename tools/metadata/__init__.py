"""`oibeam download-metadata`: a release's official CSVs, checked and laid out."""
