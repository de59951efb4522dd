"""The submit dead-letter queue: input that can never become a job, with the reason it was refused."""

from __future__ import annotations

from queryall.dal.aws import client

# SQS takes at most 256 KiB a message, attributes included; the reason and source fit in the rest.
MAX_BODY_CHARS = 200_000


class DeadLetterQueue:
    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url

    def send(self, body: str, *, source: str, error_code: str, error_message: str) -> None:
        """Keep ``body`` (cut to MAX_BODY_CHARS, said so in ``body_truncated``) with why it was refused."""
        attributes = {
            "error_code": error_code,
            "error_message": _printable(error_message[:1000]),
            "submit_source": source,
        }
        if len(body) > MAX_BODY_CHARS:
            body = body[:MAX_BODY_CHARS]
            attributes["body_truncated"] = "true"
        client("sqs").send_message(
            QueueUrl=self.queue_url,
            MessageBody=body or "(empty)",  # SQS refuses an empty body
            MessageAttributes={name: {"DataType": "String", "StringValue": value}
                               for name, value in attributes.items()},
        )


def _printable(text: str) -> str:
    # An attribute takes only XML characters; a reason may quote the caller's input.
    return "".join(character if character.isprintable() else "?" for character in text)
