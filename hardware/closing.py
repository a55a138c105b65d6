"""The `with` protocol for hardware objects that hold a camera, a port, a pty or a socket."""

import abc
from types import TracebackType
from typing import Self


class Closing(abc.ABC):
    """An object that holds something until close(); `with` closes it, whatever happened."""

    @abc.abstractmethod
    def close(self) -> None:
        """Let go of what the object holds; safe to call more than once."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
