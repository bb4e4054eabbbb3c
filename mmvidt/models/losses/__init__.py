"""mmvidt losses."""
