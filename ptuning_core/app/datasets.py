"""The data façade: the bundled datasets, uploaded files and Hugging Face datasets, and which
data a caller may read (bundled sets, their own uploads, the class's). Data comes back as the
plain data contexts the pages work with."""
from __future__ import annotations

from typing import Optional

from ptuning_core.data import uploads
from ptuning_core.access import PermissionDenied


class Data:
    def __init__(self, core, svc):
        self._core, self._svc = core, svc

    def check_ref(self, ref: str, who: Optional[str] = None) -> str:
        """Server mode: data comes from bundled sets or files this server wrote (uploads). With
        ``who``, an upload must be theirs or the class's (the teacher may read any)."""
        from ptuning_core.data import bundled as D
        from ptuning_core.data import hfdata
        if hfdata.is_hf_ref(ref):
            if hfdata.parse_ref(ref).local and not self._core.settings.allow_local_paths:
                raise D.DataError("this server does not read local folders (hf:./...); use a "
                                  "Hugging Face dataset name")
            return ref
        if D.is_bundled_ref(ref):
            name, split = ref.rsplit(":", 1)
            if split not in D.dataset_info(name)["files"]:
                raise D.DataError(f"dataset '{name}' has no split '{split}'")
            return ref
        owner = uploads.owner_of(ref)
        if owner is None:
            raise D.DataError("this server only reads bundled datasets and files uploaded "
                              "through the app")
        if who is not None and owner not in (who, uploads.CLASS) and not self._core.is_teacher(who):
            raise PermissionDenied("that uploaded file belongs to someone else; upload your "
                                   "own copy")
        return ref

    def open_hf_dataset(self, train_ref: str, eval_ref: str, text_fields: list,
                        label_field: str = "label") -> dict:
        """Check and load a Hugging Face dataset for the app: the data context a page works
        with (same shape as an upload's). One-line DataError on anything wrong."""
        import re

        from ptuning_core import config as C
        from ptuning_core.data import bundled as D
        from ptuning_core.data import hfdata
        for ref in (train_ref, eval_ref):
            if not hfdata.is_hf_ref(ref or ""):
                raise D.DataError(f"'{ref}' is not of the form hf:NAME[/CONFIG]:SPLIT")
            self.check_ref(ref)
        text_fields = [f.strip() for f in text_fields if f.strip()]
        if not text_fields:
            raise D.DataError("name the text column(s) of the dataset")
        for f in text_fields + [label_field]:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", f):
                raise D.DataError(f"'{f}' cannot be a template field; columns used by the app "
                                  f"need plain names (letters, digits, _)")
        train = D.validate(D.load_ref(train_ref), text_fields, label_field)
        D.validate(D.load_ref(eval_ref), text_fields, label_field)
        classes = sorted({r[label_field] for r in train.rows})
        if len(classes) < 2:
            raise D.DataError(f"{train_ref} has only one class; training needs two")
        if len(classes) > C.MAX_CLASSES:
            raise D.DataError(f"{train_ref} has {len(classes)} different labels (at most "
                              f"{C.MAX_CLASSES} classes; is '{label_field}' the label column?)")
        return {"name": f"hf:{train_ref[3:].rsplit(':', 1)[0]}", "train_ref": train_ref,
                "eval_ref": eval_ref, "dev_ref": None, "rows": train.rows[:2000],
                "fields": text_fields, "label_field": label_field, "classes": classes,
                "verbalizer": {c: [c] for c in classes},
                **C.upload_templates(text_fields),  # the same as an upload's
                "description": f"{train_ref} ({len(train.rows)} rows) evaluated on {eval_ref}",
                "vocab": False, "warnings": train.warnings}

    def datasets(self, label_space: Optional[str] = None) -> list:
        """The bundled datasets' names (only those of one ``label_space``: classes | vocab)."""
        from ptuning_core.data import bundled as D
        names = D.list_datasets()
        return [n for n in names if label_space is None or
                D.dataset_info(n)["label_space"] == label_space]

    def dataset_info(self, name: str) -> dict:
        """A bundled dataset's manifest entry (DataError when there is none)."""
        from ptuning_core.data import bundled as D
        return D.dataset_info(name)

    def dataset_rows(self, name: str, split: str) -> list:
        """The rows of a bundled dataset's split."""
        from ptuning_core.data import bundled as D
        return D.load_ref(self.check_ref(f"{name}:{split}")).rows

    def upload_columns(self, raw: bytes, filename: str) -> list:
        """The columns of a file about to be uploaded (DataError when it cannot be read)."""
        from ptuning_core.data import bundled as D
        if len(raw) > self._core.settings.max_upload_mb * 2 ** 20:
            raise D.DataError(f"the file is larger than this server's limit "
                              f"({self._core.settings.max_upload_mb} MB)")
        return D.parse_bytes(raw, filename).columns

    def save_upload(self, who: str, raw: bytes, filename: str, text_fields: list,
                    label_field: str) -> dict:
        """Validate and keep an uploaded file in ``who``'s folder; its data context."""
        from ptuning_core.data import bundled as D
        if len(raw) > self._core.settings.max_upload_mb * 2 ** 20:
            raise D.DataError(f"the file is larger than this server's limit "
                              f"({self._core.settings.max_upload_mb} MB)")
        return uploads.save(who, raw, filename, text_fields, label_field)

    def open_upload(self, who: str, meta: dict) -> dict:
        """The data context of a kept upload, if it is ``who``'s or the class's."""
        for key in ("train_ref", "eval_ref"):
            self.check_ref(str((meta or {}).get(key) or ""), who)
        return uploads.context(meta)
