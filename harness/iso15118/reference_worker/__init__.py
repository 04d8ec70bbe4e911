"""Code that runs INSIDE the separate iso15118 virtual environment (stdlib + iso15118 only)."""
