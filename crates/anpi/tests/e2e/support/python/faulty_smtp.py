"""An aiosmtpd Maildir handler that misbehaves on purpose, for anpi's delivery fault tests.

    python3 -m aiosmtpd -n -l 127.0.0.1:PORT -c faulty_smtp.Faulty MAILDIR SPEC

SPEC is a comma-separated list of rules; each applies to recipients whose address starts with
PREFIX (case-insensitive):
    tempfail-first:PREFIX      first message for such an address: 451, later ones accepted
    reject:PREFIX              always 550 (no such user)
    drop-first:PREFIX          first message: the connection is cut after DATA, before any reply
                               (the message is not kept)
    slow-first:PREFIX:SECONDS  first message: the reply waits SECONDS, then the message is kept
                               and accepted (a client that gave up may send it again)
"""

import asyncio

from aiosmtpd.handlers import Mailbox


class Faulty(Mailbox):
    def __init__(self, mail_dir, spec):
        super().__init__(mail_dir)
        self.rules = []
        for rule in filter(None, spec.split(",")):
            parts = rule.split(":")
            self.rules.append((parts[0], parts[1].lower(), float(parts[2]) if len(parts) > 2 else 0.0))
        self.seen = set()

    def rule_for(self, rcpts):
        for kind, prefix, arg in self.rules:
            if any(r.lower().startswith(prefix) for r in rcpts):
                return kind, arg
        return None, 0.0

    async def handle_DATA(self, server, session, envelope):
        kind, arg = self.rule_for(envelope.rcpt_tos)
        key = (kind, tuple(envelope.rcpt_tos))
        first = key not in self.seen
        self.seen.add(key)
        if kind == "reject":
            return "550 5.1.1 No such user here"
        if kind == "tempfail-first" and first:
            return "451 4.3.0 Try again later"
        if kind == "drop-first" and first:
            server.transport.abort()
            return "421 4.4.2 Connection dropped"
        if kind == "slow-first" and first:
            await asyncio.sleep(arg)
        return await super().handle_DATA(server, session, envelope)

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 2:
            parser.error("usage: -c faulty_smtp.Faulty MAILDIR SPEC")
        return cls(args[0], args[1])
