"""``careloop console PATIENT_REF``: chat as a patient over the console channel (one message a line)."""

from __future__ import annotations

import sys

import click

from bot.channels.console.inbound import send_as_patient
from care.patients import get_patient
from careloop.bot_runtime import bot_for
from careloop.cli.base import CliContext, main, pass_cli
from careloop.flow_library import tell_problems


@main.command()
@click.argument("patient_ref")
@pass_cli
def console(cli: CliContext, patient_ref: str) -> None:
    """Talk to Careloop as the patient PATIENT_REF (card number or id); type 'exit' or end input to stop."""
    runtime = cli.runtime()
    bot = bot_for(runtime)
    tell_problems(bot.services.library, lambda line: click.echo(line, err=True))
    with cli.unit_of_work() as session:
        card_no = get_patient(session, patient_ref).card_no or patient_ref
    if sys.stdin.isatty():
        click.echo("Chatting as the patient. Try 血压, 问卷 or 帮助; 'exit' ends.")
    for line in sys.stdin:
        text = line.rstrip("\n")
        if text.strip().lower() in ("exit", "quit", "退出"):
            break
        with cli.unit_of_work() as session:
            reply = send_as_patient(session, bot.services, card_no=card_no, text=text, speaker=cli.actor,
                                    at=runtime.clock.now())
        for reply_text in reply.texts:
            click.echo(reply_text)
            click.echo("")
