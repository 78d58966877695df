"""refimpl — a reference vector database whose memory lifecycle is done right."""

from .alloc import ALLOCATOR_NAMES
from .database import (
    DB,
    Database,
    SearchResult,
    add_vector_batch,
    cleanup_global_db,
    clear_database,
    get_global_db,
    search_vectors,
)
from .faults import FAULT_NAMES

__all__ = [
    "ALLOCATOR_NAMES",
    "DB",
    "FAULT_NAMES",
    "Database",
    "SearchResult",
    "add_vector_batch",
    "cleanup_global_db",
    "clear_database",
    "get_global_db",
    "search_vectors",
]
