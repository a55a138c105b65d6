"""Where the host keeps its state: an abstract interface and one module per database."""
