"""Stand-in for dom0's XenAPIPlugin module: dispatch keeps the table instead of reading argv."""

table = None


class Failure(Exception):
    """Same shape as the real one: a XenAPI error code and its parameters."""

    def __init__(self, code, params):
        Exception.__init__(self)
        self.params = [code] + params

    def __str__(self):
        return str(self.params)


def dispatch(fn_table):
    global table
    table = fn_table
