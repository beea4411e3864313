"""Command-line flags, declared once per flag group (inputs, output, trainable
rule, selection, fetching, snapshot), and one parser per command."""
