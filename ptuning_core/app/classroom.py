"""The classroom façade: identities (sign-in, display names), the teacher (code, what they may
change), the pinned class template and data, what a student's pages open on (working state),
and the queue as the class sees it (rows with positions, owners, estimated starts)."""
from __future__ import annotations

import time
from typing import Optional

from ptuning_core.data import uploads
from ptuning_core.access import PermissionDenied, may_manage
from ptuning_core.lm.backbone import ModelLoadError
from ptuning_core.lru import LRU


class ClassroomDoor:
    TEACHER_TTL = 10.0  # s a page's "may I stop it" display trusts a teacher lookup

    def __init__(self, core, svc):
        self._core, self._svc = core, svc
        self._teachers = LRU(lambda: 512)  # who -> (is teacher, when looked up): display only

    # ---- identities and the teacher -----------------------------------------------------------
    def sign_in(self, token) -> tuple:
        """(identity, new token to store in the browser or None) for a browser's token."""
        return self._core.classroom.sign_in(token)

    def heartbeat(self, who: str) -> None:
        """``who``'s page is open: their queued jobs are not reaped as idle."""
        self._core.queue.heartbeat(who)

    def names(self, owners) -> dict:
        """Identity -> display name."""
        return self._core.classroom.labels(owners)

    @property
    def teacher_mode(self) -> bool:
        """Whether this server has a teacher code (someone can become the teacher)."""
        return self._core.classroom.teacher_mode

    def become_teacher(self, who: str, code: str) -> None:
        self._core.classroom.become_teacher(who, code)

    def leave_teacher(self, who: str) -> None:
        self._core.classroom.leave_teacher(who)

    def is_teacher(self, who: str) -> bool:
        return self._core.is_teacher(who)

    def can_manage(self, who: str, owner) -> bool:
        """May ``who`` change what ``owner`` started? (its owner or the teacher)"""
        return may_manage(owner, who, self._core.is_teacher(who))

    def teacher_view(self, who: str) -> bool:
        """Whether ``who`` is the teacher, for what a polling page shows: the flag is remembered
        for ``TEACHER_TTL`` seconds (a permission itself is always checked again)."""
        hit = self._teachers.get(who)
        if hit is None or time.monotonic() - hit[1] > self.TEACHER_TTL:
            hit = (self._core.is_teacher(who), time.monotonic())
            self._teachers.put(who, hit)
        return hit[0]

    def may_stop(self, who: str, owner: str) -> bool:
        """Whether to show ``who`` a Stop button for ``owner``'s job: ``can_manage`` with the
        teacher flag of ``teacher_view`` (stopping checks again, ``stop_job``)."""
        return may_manage(owner, who, owner != who and self.teacher_view(who))

    def queue_rows(self, who: str) -> list:
        """Every queued or running job, in order (running first, then by position): label,
        kind, owner's display name, whether it is ``who``'s, state, position, step, whether
        ``who`` may stop it, and the estimated start (seconds from now; None: unknown or
        running). Read from the shared snapshot (``live``)."""
        snap = self._svc.runs.live()
        now = time.time()
        rows = []
        for v in snap.live:
            start = None if v.start_in_s is None else max(0.0, v.start_in_s - (now - snap.at))
            rows.append({"job": v.id, "run": v.label, "kind": v.kind, "owner": v.owner,
                         "yours": v.owner_id == who, "state": v.state,
                         "position": v.position or None,
                         "step": v.step if v.status == "running" and v.steps else None,
                         "start_in_s": start, "can_stop": self.may_stop(who, v.owner_id)})
        return rows

    def class_pin(self) -> Optional[dict]:
        """What the teacher pinned: {template, dataset, upload (meta) or hf (references), by,
        version}, or None. An uploaded or Hugging Face dataset is named ``class:...``
        (``class_data`` opens it); a bundled one keeps its name."""
        return self._core.classroom.pin()

    def pin_class(self, who: str, template: str, ctx: dict) -> dict:
        """Pin a template and the data context it is for; students' Studio opens on them. An
        uploaded dataset is copied to the class folder so every student can read it."""
        from ptuning_core.template import parse
        if not self._core.is_teacher(who):
            raise PermissionDenied("only the teacher can pin the class template")
        parse(template, fields=ctx["fields"])  # a TemplateError says what is wrong
        from ptuning_core.data.hfdata import is_hf_ref
        name = ctx["name"]
        for prefix in ("class:", "upload:"):
            name = name[len(prefix):] if name.startswith(prefix) else name
        pin = {"template": template, "dataset": name, "upload": None, "hf": None,
               "by": self._core.classroom.labels([who])[who], "version": time.time()}
        if uploads.owner_of(ctx["train_ref"]) is not None:
            self._svc.data.open_upload(who, uploads.meta(ctx))  # the files are who's to read
            pin["dataset"] = "class:" + name
            pin["upload"] = {**uploads.copy_to_class(uploads.meta(ctx)), "name": pin["dataset"]}
        elif is_hf_ref(ctx["train_ref"]):
            pin["dataset"] = "class:" + name
            pin["hf"] = {"train_ref": ctx["train_ref"], "eval_ref": ctx["eval_ref"],
                         "text_fields": ctx["fields"], "label_field": ctx["label_field"]}
        self._core.classroom.set_pin(who, pin)
        return pin

    def unpin_class(self, who: str) -> None:
        self._core.classroom.set_pin(who, None)

    def class_data(self, who: str) -> Optional[dict]:
        """The data context of the pinned dataset when it is an upload or a Hugging Face
        dataset (None for a bundled one, or no pin); its name is the pin's ``dataset``."""
        pin = self.class_pin()
        if not pin:
            return None
        if pin.get("upload"):
            ctx = self._svc.data.open_upload(who, pin["upload"])
        elif pin.get("hf"):
            ctx = self._svc.data.open_hf_dataset(**pin["hf"])
        else:
            return None
        ctx["name"] = pin["dataset"]
        return ctx

    # ---- what a student's pages open on -------------------------------------------------------
    def keep_working_state(self, who: str, values: dict) -> None:
        """Keep what changed on ``who``'s pages, for their next tab or refresh: any of ``name``,
        ``template``, ``template_input``, ``dataset``, ``model``, ``pin_seen`` and the data
        contexts ``upload`` and ``hfdata`` (kept as references, not rows). Only the keys given
        change (None removes one), so a tab that changed its name does not put back the
        template another tab replaced."""
        if "name" in values:
            self._core.classroom.set_name(who, values["name"] or "")
        changes = {k: values[k] for k in ("template", "template_input", "dataset", "model",
                                          "pin_seen", "label_tokens") if k in values}
        if "upload" in values:
            changes["upload"] = uploads.meta(values["upload"]) if values["upload"] else None
        if "hfdata" in values:
            hf = values["hfdata"]
            changes["hf"] = {"train_ref": hf["train_ref"], "eval_ref": hf["eval_ref"],
                             "text_fields": hf["fields"], "label_field": hf["label_field"]} \
                if hf else None
        if changes:
            self._core.classroom.save_state(who, changes)

    def working_state(self, who: str) -> dict:
        """What ``who``'s pages open on in a new tab or after a refresh: the values
        ``keep_working_state`` kept, with ``upload`` / ``hfdata`` as data contexts again, and
        ``problems``: one line for each thing that could not be brought back."""
        from ptuning_core.engine.experiment import USER_ERRORS
        kept = self._core.classroom.state(who)
        out = {k: kept[k] for k in ("template", "template_input", "dataset", "pin_seen")
               if k in kept}
        if kept.get("label_tokens") in ("words", "learned"):  # Studio's learned-label toggle
            out["label_tokens"] = kept["label_tokens"]
        out["name"] = self._core.classroom.name(who)
        out["problems"] = []
        if kept.get("model"):
            try:
                out["model"] = self._core.settings.check_model(kept["model"])
            except ModelLoadError as e:
                out["problems"].append(str(e))
        try:
            if kept.get("upload"):
                out["upload"] = self._svc.data.open_upload(who, kept["upload"])
            if kept.get("hf"):
                out["hfdata"] = self._svc.data.open_hf_dataset(**kept["hf"])
        except USER_ERRORS as e:
            out["problems"].append(str(e))
        return out
