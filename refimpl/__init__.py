"""refimpl — a reference vector database whose memory lifecycle is done right."""

from .alloc import ALLOCATOR_NAMES
from .database import DB, Database, SearchResult, State
from .faults import FAULT_NAMES
from .singleton import (
    add_vector_batch,
    cleanup_global_db,
    clear_database,
    get_global_db,
    search_vectors,
)

__all__ = [
    "ALLOCATOR_NAMES",
    "DB",
    "FAULT_NAMES",
    "Database",
    "SearchResult",
    "State",
    "add_vector_batch",
    "cleanup_global_db",
    "clear_database",
    "get_global_db",
    "search_vectors",
]
