"""The `sentinel` command line and the end-to-end demo that drives host and device processes."""
