"""Real models for the demo and the examples: trained or pretrained weights, no downloads at run time."""
