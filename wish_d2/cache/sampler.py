"""A training sampler that streams the feature cache: shards are visited in random order, a small group of shards
at a time, and samples are shuffled within the group. Each shard is read once per epoch and only ``group`` shards
are held in memory, whatever the dataset size (uniform shuffling would reload a shard for almost every sample)."""
import itertools
from typing import Hashable, List, Optional

import torch
from detectron2.utils import comm
from torch.utils.data.sampler import Sampler


class ShardGroupedTrainingSampler(Sampler):
    def __init__(self, shard_of: List[Hashable], group: int = 2, seed: Optional[int] = None):
        """
        Args:
            shard_of: for each dataset index, the id of the shard holding it.
            group: shards mixed together; the cache must keep at least this many shards open.
            seed: shared by all ranks (each rank takes every world-size-th index of the same stream).
        """
        self._size = len(shard_of)
        if self._size == 0:
            raise ValueError("ShardGroupedTrainingSampler needs a non-empty dataset")
        keys = list(dict.fromkeys(shard_of))
        index = {k: i for i, k in enumerate(keys)}
        self._members = [[] for _ in keys]
        for i, k in enumerate(shard_of):
            self._members[index[k]].append(i)
        self._group = max(1, group)
        self._seed = int(comm.shared_random_seed() if seed is None else seed)
        self._rank, self._world = comm.get_rank(), comm.get_world_size()

    def __iter__(self):
        yield from itertools.islice(self._infinite_indices(), self._rank, None, self._world)

    def _infinite_indices(self):
        g = torch.Generator()
        g.manual_seed(self._seed)
        while True:
            order = torch.randperm(len(self._members), generator=g).tolist()
            for start in range(0, len(order), self._group):
                block = [i for s in order[start:start + self._group] for i in self._members[s]]
                for j in torch.randperm(len(block), generator=g).tolist():
                    yield block[j]
