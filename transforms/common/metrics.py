"""The one namespace of every Beam metric this package reports."""

NAMESPACE = "oibeam"
