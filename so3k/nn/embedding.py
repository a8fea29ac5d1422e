"""Element embedding x_i^(0) = E[species_i], one learnable row per element the model knows."""

from torch import Tensor, nn


class ElementEmbedding(nn.Module):
    def __init__(self, num_elements: int, features: int):
        super().__init__()
        self.table = nn.Embedding(num_elements, features)

    def forward(self, species: Tensor) -> Tensor:
        """species (N,) int64 in 0..num_elements-1 -> x (N, F)."""
        return self.table(species)
