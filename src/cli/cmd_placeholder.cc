// cli commands
