"""China 2nd-generation ID cards read through a serial SAM module (GA 467): protocol, driver."""
