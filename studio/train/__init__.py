"""`studio train`: train the studio's own networks with the DDPM objective (see command.py and RECIPES.md)."""
