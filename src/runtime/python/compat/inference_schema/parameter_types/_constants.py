DATE_FORMAT = "%Y-%m-%d"
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f %z"
TIME_FORMAT = "%H:%M:%S.%f %z"


class SWAGGER_FORMAT_CONSTANTS:  # noqa: N801 - the real package's name
    NUMPY_FORMAT = "numpy.ndarray"
    PANDAS_FORMAT = "pandas.DataFrame"
