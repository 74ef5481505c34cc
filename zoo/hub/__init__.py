"""The Hugging Face Hub: ``client`` (download, cache, pinning, checksums, upload through
``huggingface_hub``) and ``publish`` (``zoo push``: a run folder as a Hub model repo).  These move and verify
files; the loader (:mod:`zoo.loading`) turns what they fetch into a model."""
from zoo.hub.client import (
    CARD_FILE, CONFIG_FILE, DEFAULT_WEIGHTS, ChecksumError, FileNotFound, HubError, HubUnreachable, RepoNotFound,
    RevisionNotFound, download_file, download_snapshot, fetch_repo, hash_file, parse_hf_uri, push_folder,
)

__all__ = [
    "HubError", "HubUnreachable", "RepoNotFound", "RevisionNotFound", "FileNotFound", "ChecksumError", "parse_hf_uri",
    "push_folder", "download_file", "download_snapshot", "fetch_repo", "hash_file",
    "CONFIG_FILE", "CARD_FILE", "DEFAULT_WEIGHTS",
]
