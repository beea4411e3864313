"""`--runner DaskRunner`: Beam's DaskRunner with the defects that gave wrong
results fixed (Beam 2.77's apache_beam.runners.dask; each is tested on a tiny
pipeline in tests/pipelines/test_dask_runner.py):

- Every consumer of a multi-output ParDo got every output: the ParDo's bag
  held all tags' elements and each consumer read the whole bag. Here each
  output PCollection is its own bag, the elements of its tag.
- Outputs of finish_bundle were dropped: the bundle's results were collected
  before finish_bundle ran. Here they are collected after it.
- Only the last-visited leaf was computed ("connected to the full graph" does
  not hold for a pipeline with several sinks). Here every leaf is.
- A side input was iterated from inside every task that read it: a compute
  nested in a worker, each task holding a worker thread while it waits. Here
  each side input is computed once, as a dependency of the tasks that read
  it.

What is kept from Beam's runner: its options (--dask_client_address ...), its
overrides (Create, GroupByKey, Flatten, Reshuffle, Read) and its Create,
GroupByKey and Flatten translations. Windows are not kept past a ParDo (as in
Beam's runner): batch pipelines in the global window only. Beam metrics are
not collected (the runner has none); oibeam's manifest counts its own.
"""

from __future__ import annotations

import dataclasses
import itertools
import typing as t

import apache_beam as beam
import dask
import dask.bag as db
import dask.distributed as ddist
from apache_beam import pvalue
from apache_beam.pipeline import AppliedPTransform, PipelineVisitor
from apache_beam.runners.common import (
    DoFnContext,
    DoFnInvoker,
    DoFnSignature,
    Receiver,
    _OutputHandler,
)
from apache_beam.runners.dask import dask_runner as beam_dask
from apache_beam.runners.dask import transform_evaluator as beam_ops
from apache_beam.runners.dask.overrides import dask_overrides
from apache_beam.runners.runner import PipelineState
from apache_beam.transforms.sideinputs import SideInputMap
from apache_beam.utils.windowed_value import WindowedValue

DaskOptions = beam_dask.DaskOptions  # registers --dask_client_address etc.
_MAIN = None  # the tag of a ParDo's main output
TERMINAL = (PipelineState.DONE, PipelineState.FAILED)


class _Collect(Receiver):
    """A receiver keeping (tag, WindowedValue) of every output."""

    def __init__(self, tag: str | None, into: list) -> None:
        self.tag, self.into = tag, into

    def receive(self, windowed_value: WindowedValue) -> None:
        self.into.append((self.tag, windowed_value))


class _Receivers(dict):
    def __init__(self, into: list) -> None:
        super().__init__()
        self.into = into

    def __missing__(self, tag):
        self[tag] = receiver = _Collect(tag, self.into)
        return receiver


@dataclasses.dataclass(frozen=True)
class _SideInput:
    """What a task needs to rebuild a side input's view from its values."""

    view_type: type
    view_options: dict
    window_mapping_fn: t.Any


class _Values:
    """A side input's computed values, iterated as WindowedValues."""

    def __init__(self, values: list, window_fn) -> None:
        self._values, self._window_fn = values, window_fn

    def __iter__(self):
        for value in self._values:
            yield beam_ops.get_windowed_value(value, self._window_fn)


def _run_bundle(items, fn, label, window_fn, args, kwargs, sides, *side_values):
    """One Dask partition through a DoFn as one bundle: (tag, value) of
    every output, finish_bundle's included."""
    out: list = []
    receivers = _Receivers(out)
    handler = _OutputHandler(
        window_fn=window_fn,
        main_receivers=receivers[_MAIN],
        tagged_receivers=receivers,
        per_element_output_counter=None,
        output_batch_converter=None,
        process_yields_batches=False,
        process_batch_yields_elements=False,
    )
    side_inputs = [
        SideInputMap(
            side.view_type,
            side.view_options,
            _Values(values, side.window_mapping_fn),
        )
        for side, values in zip(sides, side_values, strict=True)
    ]
    invoker = DoFnInvoker.create_invoker(
        DoFnSignature(fn),
        handler,
        context=DoFnContext(label, state=None),
        side_inputs=side_inputs,
        input_args=list(args),
        input_kwargs=kwargs,
        user_state_context=None,
        bundle_finalizer_param=beam.DoFn.BundleFinalizerParam(),
    )
    invoker.invoke_setup()
    invoker.invoke_start_bundle()
    for item in items:
        invoker.invoke_process(beam_ops.get_windowed_value(item, window_fn))
    invoker.invoke_finish_bundle()
    invoker.invoke_teardown()
    return [(tag, value.value) for tag, value in out]


def _as_list(*partitions) -> list:
    return list(itertools.chain.from_iterable(partitions))


def _drain(partition) -> list:
    for _ in partition:
        pass
    return []


def _of_tag(tag):
    return lambda pair: pair[0] == tag


def _value(pair):
    return pair[1]


class _Bags(PipelineVisitor):
    """A Dask bag per PCollection, built as the pipeline is visited."""

    def __init__(self, bag_kwargs: dict) -> None:
        self.bag_kwargs = bag_kwargs
        self.bags: dict[pvalue.PCollection, db.Bag] = {}
        self.consumed: set[pvalue.PCollection] = set()
        self._side_values: dict[pvalue.PCollection, t.Any] = {}

    def visit_transform(self, node: AppliedPTransform) -> None:
        inputs = [p for p in node.inputs if not isinstance(p, pvalue.PBegin)]
        self.consumed.update(inputs)
        self.consumed.update(s.pvalue for s in node.side_inputs)
        # Exactly ParDo: Beam's _GroupAlsoByWindow is a ParDo its GroupByKey
        # translation already did the work of (it stays a NoOp, as in Beam's).
        if type(node.transform) is beam.ParDo:
            self._par_do(node, self.bags[inputs[0]])
            return
        op_class = beam_ops.TRANSLATIONS.get(type(node.transform), beam_ops.NoOp)
        op = op_class(node, bag_kwargs=self.bag_kwargs)
        if isinstance(op, beam_ops.Flatten):
            bag = op.apply([self.bags[p] for p in inputs])
        else:
            bag = op.apply(self.bags[inputs[0]] if inputs else None)
        for output in node.outputs.values():
            self.bags[output] = bag

    def _par_do(self, node: AppliedPTransform, input_bag: db.Bag) -> None:
        transform = t.cast(beam.ParDo, node.transform)
        args, kwargs = transform.raw_side_inputs
        main_input = next(iter(node.main_inputs.values()))
        window_fn = main_input.windowing.windowfn
        sides = tuple(
            _SideInput(type(s), s._view_options(), s._window_mapping_fn)
            for s in node.side_inputs
        )
        values = [self._computed_once(s.pvalue) for s in node.side_inputs]
        results = input_bag.map_partitions(
            _run_bundle,
            transform.fn,
            transform.label,
            window_fn,
            tuple(args),
            kwargs,
            sides,
            *values,
        )
        for tag, output in node.outputs.items():
            self.bags[output] = results.filter(_of_tag(tag)).map(_value)

    def _computed_once(self, side: pvalue.PCollection):
        """The side input's elements as one task's result, which every task
        reading it depends on (so it is computed once)."""
        if side not in self._side_values:
            parts = self.bags[side].to_delayed()
            self._side_values[side] = dask.delayed(_as_list)(*parts)
        return self._side_values[side]

    def leaves(self) -> list[db.Bag]:
        """A bag per PCollection nothing reads, each drained to nothing (the
        sinks' work is in computing them, not in their elements)."""
        return [
            bag.map_partitions(_drain)
            for pcoll, bag in self.bags.items()
            if pcoll not in self.consumed
        ]


class _Result(beam_dask.DaskRunnerResult):
    """Closes its client once the pipeline is done (or failed)."""

    def wait_until_finish(self, duration=None) -> str:
        try:
            return super().wait_until_finish(duration)
        finally:
            if self.state in TERMINAL:
                self.client.close()


class DaskRunner(beam_dask.DaskRunner):
    """Beam's DaskRunner, translating each PCollection to its own bag and
    computing every leaf (see the module docstring)."""

    def run_pipeline(self, pipeline, options):
        dask_options = options.view_as(DaskOptions).get_all_options(
            drop_default=True, current_only=True
        )
        bag_kwargs = DaskOptions._extract_bag_kwargs(dask_options)
        client = ddist.Client(**dask_options)
        pipeline.replace_all(dask_overrides())
        bags = _Bags(bag_kwargs)
        pipeline.visit(bags)
        futures = client.compute(bags.leaves())
        return _Result(client, futures)
