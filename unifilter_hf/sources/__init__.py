"""Sources: files, folders, tars and Hub datasets -> shards of rows with a stable key and an origin.

The layer between row layouts (what one row means) and the jobs that score rows: it knows which files
are data (:mod:`.detect`), how to read each format (:mod:`.readers`, :mod:`.webdataset`, :mod:`.hub`), checks
the layouts before any work (:mod:`.layout_check`), and knows nothing of scoring. docs/inputs.md is the
user's page.
"""

from .errors import ERROR_FIELD, SourceError
from .hub import looks_like_hub_id, undecode_images
from .layout_check import check_layouts
from .readme_license import source_license
from .shards import Shard, Source, chunked, hub_shards, open_source, row_view, scan_source
from .webdataset import document_view

__all__ = [
    "ERROR_FIELD", "Shard", "Source", "SourceError", "check_layouts", "chunked", "document_view", "hub_shards",
    "looks_like_hub_id", "open_source", "row_view", "scan_source", "source_license", "undecode_images",
]
