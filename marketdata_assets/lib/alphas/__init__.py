"""Alpha objects of the BRAIN-style API: deep merge, MongoDB documents, landing files, monthly packages.

Plain Python (no Dagster, no database client). Modules:

* ``merge``     deep merge with keyed arrays (``checks`` by name, ``classifications`` by id)
* ``documents`` alpha <-> MongoDB document (key escaping, ``_dates`` sidecar), validation, routing
* ``files``     landing layout ``<root>/alphas/<TYPE>/<YYYY-MM>/<account>/<id>.json``, canonical
                JSON, atomic writes, robust reads, quarantine
* ``packages``  monthly ``.jsonl.gz`` packages with manifests, built and decomposed losslessly
"""

from .documents import (
                        COLLECTIONS,
                        InvalidAlpha,
                        UnsupportedAlphaType,
                        collection_for,
                        from_document,
                        merged_document,
                        replace_payload,
                        to_document,
                        unsafe_keys,
                        validate_alpha,
)
from .files import (
                        API_TZ,
                        alpha_path,
                        canonical_file_bytes,
                        canonical_json,
                        land_alpha,
                        month_of,
                        quarantine,
                        read_alpha_file,
                        write_if_changed,
)
from .merge import DEFAULT_ARRAY_KEYS, IMPORT_MODES, deep_merge, merge_changed, resolve_for_mode
from .packages import PackageError, build_package, build_packages, decompose_package, verify_package

__all__ = [
    "API_TZ", "COLLECTIONS", "DEFAULT_ARRAY_KEYS", "IMPORT_MODES", "InvalidAlpha", "PackageError",
    "UnsupportedAlphaType", "alpha_path", "build_package", "build_packages", "canonical_file_bytes",
    "canonical_json", "collection_for", "decompose_package", "deep_merge", "from_document", "land_alpha",
    "merge_changed", "merged_document", "month_of", "quarantine", "read_alpha_file", "replace_payload",
    "resolve_for_mode", "to_document", "unsafe_keys", "validate_alpha", "verify_package", "write_if_changed",
]
