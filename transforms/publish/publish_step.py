"""PublishSnapshot: the pipeline's last step, publish_snapshot.publish()."""

from __future__ import annotations

import apache_beam as beam

from oibeam.transforms.publish.publish_snapshot import Latest, publish


class PublishSnapshot(beam.PTransform):
    """PCollection[manifest path] (one) -> the published snapshot directory."""

    def __init__(self, root: str, snapshot_id: str, expected: Latest) -> None:
        super().__init__()
        self._root = root
        self._snapshot_id = snapshot_id
        self._expected = expected

    def expand(self, manifest: beam.PCollection[str]) -> beam.PCollection[str]:
        return manifest | "SuccessThenLatest" >> beam.Map(
            publish, self._root, self._snapshot_id, self._expected
        ).with_output_types(str)
