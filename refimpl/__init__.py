"""refimpl — a reference vector database whose memory lifecycle is done right."""
