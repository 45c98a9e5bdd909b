"""The command line: thin commands over the node directory and the operator API."""
