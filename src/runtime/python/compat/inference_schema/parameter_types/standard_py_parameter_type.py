"""StandardPythonParameterType: a plain Python sample (int, float, str, bool, list, dict, date, bytes...)."""

import base64
import datetime as dt

from ._constants import DATE_FORMAT
from ._util import handle_standard_types
from .abstract_parameter_type import AbstractParameterType


class StandardPythonParameterType(AbstractParameterType):
    """A parameter described by a plain Python sample. Dict values and list items may themselves be
    parameter types (e.g. a NumpyParameterType inside a dict): those are converted too."""

    def __init__(self, sample_input):
        super().__init__(sample_input)
        self.sample_data_type_map = {}
        self.sample_data_type_list = []
        if self.sample_data_type is dict:
            self.sample_data_type_map = {k: v for k, v in sample_input.items() if isinstance(v, AbstractParameterType)}
        elif self.sample_data_type in (list, tuple):
            self.sample_data_type_list = [v for v in sample_input if isinstance(v, AbstractParameterType)]

    def deserialize_input(self, input_data):
        t = self.sample_data_type
        if t is dt.date and isinstance(input_data, str):
            input_data = dt.datetime.strptime(input_data, DATE_FORMAT).date()
        elif t is dt.datetime and isinstance(input_data, str):
            input_data = dt.datetime.fromisoformat(input_data)
        elif t is dt.time and isinstance(input_data, str):
            input_data = dt.time.fromisoformat(input_data)
        elif t in (bytes, bytearray) and isinstance(input_data, str):
            input_data = t(base64.b64decode(input_data.encode("utf-8")))

        if t is float and type(input_data) is int:
            return input_data  # an int where a float is expected is fine, as in inference-schema
        if not isinstance(input_data, t) or (t is int and isinstance(input_data, bool)):
            raise ValueError("expected %s, got %s" % (_name(t), _name(type(input_data))))
        return input_data

    def input_to_swagger(self):
        if self.sample_input is None:
            raise ValueError("Sample input cannot be None")
        return handle_standard_types(self.sample_input)


_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "a boolean", list: "an array",
          tuple: "an array", dict: "an object", type(None): "null"}


def _name(t):
    return _NAMES.get(t, t.__name__)
