"""Tool use, beneath every API and family: the tool model (`model`), the checks a request's tools pass
(`checks`), how the local model sees tools (`markup`), the tool-aware turn (`turn`) and the reply's content
blocks (`blocks`)."""
