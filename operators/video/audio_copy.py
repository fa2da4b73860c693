"""Copy every audio stream of a source into an output container, packet for packet.

No re-encode: each output stream is made from its source stream as a template (codec
parameters and extradata as they were), and packets are muxed with their own timestamps
(the muxer rescales them to its time base). ``copy_until`` lets the video writer feed audio
alongside video, so the muxer's interleaving buffer stays small on long clips.
"""
from __future__ import annotations

from collections.abc import Iterator

import av

from operators.video.probe import Source, open_input


class AudioCopy:
    """Template the audio streams of ``source`` into ``output``; copy packets on demand.

    Streams are added at construction, so build this before the output writes its header.
    """

    def __init__(self, source: Source, output: av.container.OutputContainer):
        self._input = open_input(source)
        audio = list(self._input.streams.audio)
        self._map = {s.index: output.add_stream_from_template(s) for s in audio}
        self._output = output
        self._packets: Iterator[av.Packet] = (p for p in self._input.demux(audio) if p.size) \
            if audio else iter(())
        self._held: av.Packet | None = None  # read, but later than the last copy_until time
        self.copied = 0

    @property
    def codecs(self) -> list[str]:
        """The copied streams' codec names (for error messages)."""
        return [s.codec_context.name for s in self._input.streams.audio]

    def copy_until(self, seconds: float | None) -> None:
        """Mux every packet whose timestamp is at most ``seconds`` (None: all that remain)."""
        while True:
            packet = self._held or next(self._packets, None)
            self._held = None
            if packet is None:
                return
            t = packet.dts if packet.dts is not None else packet.pts
            if seconds is not None and t is not None and float(t * packet.time_base) > seconds:
                self._held = packet
                return
            packet.stream = self._map[packet.stream_index]
            self._output.mux(packet)
            self.copied += 1

    def close(self) -> None:
        self._input.close()
