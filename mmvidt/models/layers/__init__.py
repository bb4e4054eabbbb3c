"""mmvidt layers."""
