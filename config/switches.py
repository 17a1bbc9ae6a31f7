"""Yes/no switches: reid-strong-baseline's 'yes'/'no' and 'on'/'off' strings and booleans mean the same.

Some keys keep RSB's word values (TEST.RE_RANKING 'yes'/'no', MODEL.IF_LABELSMOOTH
'on'/'off'), others are booleans (TEST.FLIP). Any of them takes either form,
and YAML reads an unquoted yes/no/on/off as a boolean anyway.
"""
TRUE_WORDS = ("yes", "on", "true")
FALSE_WORDS = ("no", "off", "false")


def as_bool(value):
    """True/False for a boolean or a switch word (any case); None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    return None


def coerce_switch(value, default, choices=()):
    """``value`` in the form of ``default``: a boolean, or the word pair ('yes'/'no', 'on'/'off') that
    ``default`` or the key's ``choices`` use (MODEL.NECK's 'no' takes a YAML false).

    Values that are not switches, and keys that are not switches, are returned unchanged.
    """
    flag = as_bool(value)
    if flag is None:
        return value
    if isinstance(default, bool):
        return flag
    if not isinstance(default, str):
        return value
    words = {default, *choices}
    for pair in (("yes", "no"), ("on", "off")):
        word = pair[0] if flag else pair[1]
        if word in words:
            return word
    return value
