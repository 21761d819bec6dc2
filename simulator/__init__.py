"""Device simulator: synthetic Kiên Giang households sent the way ODK Collect sends them."""
