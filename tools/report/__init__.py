"""The parts of `oibeam report`: find and read a run (runs), gather what to
show (label_facts, fetch_facts), draw it (charts), say it (run_section,
label_sections, fetch_sections) and lay it out as one HTML page (page).
"""
