"""Which runtime or compiler gets which graph shape (targets: Target and its keeps), with the structure the keeps
look for: an attention's products and projections (attention) and the layers feeding a Tanh chain (unfused)."""
