"""Sources: files, folders, tars and Hub datasets -> shards of rows with a stable key and an origin.

The layer between row layouts (what one row means) and the jobs that score rows: it knows which files
are data and how to read them, and nothing of scoring.
"""

from .readme_license import source_license
from .shards import Shard, SourceError, document_view, looks_like_hub_id, open_source, undecode_images

__all__ = [
    "Shard", "SourceError", "document_view", "looks_like_hub_id", "open_source", "source_license", "undecode_images",
]
