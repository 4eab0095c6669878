"""What reading a damaged or foreign file raises, so that a reader catches exactly that and a bug still surfaces.

A truncated or foreign ``torch.save`` file: RuntimeError (a bad zip archive), ``pickle.UnpicklingError``
(a foreign pickle, or objects ``weights_only`` refuses), EOFError (an empty file), ValueError and KeyError
(a malformed archive or record), ``zipfile.BadZipFile``; and every OSError (permissions, a vanished file).
An ``.npz`` archive fails the same ways. A download adds ``http.client.HTTPException`` (a broken reply).
"""

from __future__ import annotations

import http.client
import pickle
import zipfile

DAMAGED_FILE: tuple[type[BaseException], ...] = (
    OSError,
    RuntimeError,
    EOFError,
    ValueError,
    KeyError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
)
FAILED_DOWNLOAD: tuple[type[BaseException], ...] = (*DAMAGED_FILE, http.client.HTTPException)
