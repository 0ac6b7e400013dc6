"""One user talking to the bot through the fake Bot API, as a person would in Telegram."""

from __future__ import annotations

from tests.bot import updates
from tests.support.fake_telegram import Call, FakeTelegram

CHAT_METHODS = ("sendMessage", "editMessageText")


class Conversation:
    """Sends updates as ``user_id`` (via getUpdates) and waits for what the bot answers."""

    def __init__(self, fake: FakeTelegram, user_id: int, language: str = "en") -> None:
        self.fake = fake
        self.user_id = user_id
        self.language = language

    def to_me(self) -> list[Call]:
        """Every message the bot sent or edited in this user's chat, in order."""
        with self.fake._changed:
            return [c for c in self.fake.calls if c.method in CHAT_METHODS
                    and int(c.params.get("chat_id") or 0) == self.user_id]

    def send(self, text: str) -> Call:
        """Send ``text``; the bot's next message in this chat."""
        before = len(self.to_me())
        self.fake.push_update(updates.message(self.user_id, text, language=self.language))
        return self._next(before)

    def press(self, shown: Call, label: str, *, answer_only: bool = False
              ) -> tuple[Call | None, dict[str, object]]:
        """Press the button whose label contains ``label`` under the message ``shown``.

        Returns the bot's next message in the chat and the callback answer's parameters.
        With ``answer_only`` the press is expected to be answered only (no message: None is
        returned as soon as the answer is there); a message sent anyway lands in the chat
        before the next `send`'s answer, which that `send` then returns instead — so a test
        that goes on talking sees it. Waiting for "no message" for a fixed time would either
        be slow or, on a busy machine, wrong."""
        data = next((d for text, d in shown.buttons() if label in text), None)
        assert data is not None, f"no button {label!r} in {shown.buttons()}"
        callback_id = f"cb-{self.user_id}-{len(self.fake.calls)}"
        before = len(self.to_me())
        self.fake.push_update(updates.press(self.user_id, data, message_id=shown.message_id,
                                            text=str(shown.params.get("text")),
                                            language=self.language, callback_id=callback_id))
        answered = self.fake.wait_for(lambda: bool(self._answer(callback_id)))
        assert answered, f"the button {label!r} was not answered"
        answer = self._answer(callback_id)[0].params
        if answer_only:
            return None, answer
        # The answer comes first, the message right after it.
        return self._next(before), answer

    def react(self, shown: Call, emoji: str = "❤") -> Call:
        """React to ``shown``; the bot's next message in the chat."""
        before = len(self.to_me())
        self.push_reaction(shown, emoji)
        return self._next(before)

    def push_reaction(self, shown: Call, emoji: str) -> None:
        """React to ``shown`` without waiting for anything."""
        self.fake.push_update(updates.reaction(self.user_id, shown.message_id, emoji,
                                               language=self.language))

    def _answer(self, callback_id: str) -> list[Call]:
        return [c for c in self.fake.calls_of("answerCallbackQuery")
                if c.params.get("callback_query_id") == callback_id]

    def _next(self, before: int) -> Call:
        arrived = self.fake.wait_for(lambda: len(self.to_me()) > before)
        assert arrived, f"the bot did not answer user {self.user_id}"
        return self.to_me()[before]
