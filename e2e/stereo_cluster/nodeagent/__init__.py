"""A node agent for the local control plane: registers a Node and runs its pods as processes."""
