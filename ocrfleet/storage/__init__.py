"""Object references (s3://, file://, http(s)://) and the result writer."""
