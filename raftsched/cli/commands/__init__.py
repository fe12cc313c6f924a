"""One module per command group; each registers its parsers with a handler per sub-command."""
