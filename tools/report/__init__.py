"""`oibeam report`: gather what to show (label_facts, fetch_facts), draw it
(charts), say it (run_section, label_sections, fetch_sections) and lay it out as
one HTML page (page); write_report puts it together for a run read by
tools.runs.
"""
