"""A torch Dataset over ImageRecords, giving the sample dict of the data contract."""
import logging

import torch
from PIL import Image
from torch.utils.data import Dataset

from utils.errors import UserError

from .image_loading import BadImageError, read_image

logger = logging.getLogger("jifd.data")


class BadDataError(UserError):
    """A bad file met while loading, whose message survives worker processes.

    DataLoader re-raises a worker's exception as ``type(err)(text)`` where
    text is the worker's whole traceback; keeping only its last line's message
    lets entry points print the message alone, as for any UserError.
    """

    def __init__(self, message):
        if "Original Traceback" in message:
            message = message.rstrip().splitlines()[-1].split(": ", 1)[-1]
        super().__init__(message)


class ImageDataset(Dataset):
    """``dataset[i]`` -> {"images", "pids", "camids", "domains", "paths"}.

    A bad image in training is replaced by the next readable image of the same
    identity (with that image's camera, domain and path), so a broken file
    costs one view of that vehicle, not the run.
    A bad test image is an error when ``strict``; otherwise a blank image
    takes its place, because query and gallery indices must stay aligned with
    their records for evaluation, and the warning tells the user that the
    metrics include one uninformative image.
    """

    def __init__(self, records, transform, *, target_size=None, draft=True, is_train=True, strict=False):
        self.records = list(records)
        self.transform = transform
        self.target_size = target_size
        self.draft = draft
        self.is_train = is_train
        self.strict = strict
        # One flag per record in shared memory: the worker that meets a bad file
        # marks it, so that it is warned once, never decoded again by any worker
        # in any epoch, and counted exactly (num_unreadable) in the main process.
        self._unreadable = torch.zeros(len(self.records), dtype=torch.uint8).share_memory_()
        self._same_pid = None

    @property
    def num_unreadable(self):
        """How many distinct files were found unreadable so far (skipped or blanked)."""
        return int(self._unreadable.sum())

    def unreadable_flags(self):
        """A copy of the per-record flags: 1 where the file was found unreadable so far."""
        return self._unreadable.clone()

    def __len__(self):
        return len(self.records)

    def __getitem__(self, index):
        if self.is_train:
            record, image = self._read_train(index)
        else:
            record = self.records[index]
            image = self._read_test(index)
        return {
            "images": self.transform(image),
            "pids": record.pid,
            "camids": record.camid,
            "domains": record.domain,
            "paths": record.path,
        }

    def _try_read(self, index):
        """The image of ``index``, or None once it is found unreadable: marked and warned about once (an
        error under ``strict``)."""
        if self._unreadable[index]:
            return None
        try:
            return read_image(self.records[index].path, self.target_size, self.draft)
        except BadImageError as err:
            if self.strict:
                complete = "" if self.is_train else "; test sets must be complete"
                raise BadDataError(f"{err}{complete} (DATASETS.STRICT is on)") from None
            self._unreadable[index] = 1
            if self.is_train:
                logger.warning("%s; using another image of the same identity (%d unreadable training file(s) "
                               "so far; DATASETS.STRICT True makes this an error)", err, self.num_unreadable)
            else:
                logger.warning("%s; using a blank image in its place (DATASETS.STRICT True makes this an "
                               "error)", err)
            return None

    def _read_train(self, index):
        """(record, image) of ``index`` or of the substitute that replaces it."""
        record = self.records[index]
        image = self._try_read(index)
        if image is not None:
            return record, image
        for other in self._substitutes(index):
            image = self._try_read(other)
            if image is not None:
                return self.records[other], image
        raise BadDataError(
            f"every image of identity {record.pid} (source {record.source}) is unreadable, "
            f"e.g. {record.path}; remove or replace these files")

    def _substitutes(self, index):
        """Other indices of the same (source, pid), starting after ``index``, wrapping around."""
        if self._same_pid is None:
            self._same_pid = {}
            for i, r in enumerate(self.records):
                self._same_pid.setdefault((r.source, r.pid), []).append(i)
        record = self.records[index]
        group = self._same_pid[(record.source, record.pid)]
        start = group.index(index)
        return group[start + 1:] + group[:start]

    def _read_test(self, index):
        image = self._try_read(index)
        if image is not None:
            return image
        height, width = self.target_size or (1, 1)
        return Image.new("RGB", (width, height))
