"""The one error the insight package raises for input a user can fix."""


class InsightError(ValueError):
    """Bad layer, method, target, epoch or run for feature-space and CAM tools; the
    message says what to use instead. The CLI turns it into exit code 2."""
