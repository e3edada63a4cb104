"""The `watchstander` command line: one module per command group, thin over the application floor."""
