"""Echo bot: answers every message in every room it is a member of.

CHATFLOW_HTTP_URL=... CHATFLOW_WS_URL=... BOT_HANDLE=... BOT_PASSWORD=... python echo_bot.py
"""

import asyncio
import os

from chatflow_client import ChatClient, MessageReceived


async def main() -> None:
    async with ChatClient(os.environ["CHATFLOW_HTTP_URL"], os.environ["CHATFLOW_WS_URL"]) as bot:
        await bot.login(os.environ["BOT_HANDLE"], os.environ["BOT_PASSWORD"])
        events = bot.events()  # subscribed before connecting: nothing is missed
        await bot.connect()  # reconnects, resumes and resends by itself from here on
        for room in await bot.api.rooms():
            await bot.join(room.id)
        async for event in events:
            if isinstance(event, MessageReceived) and not event.own:
                await bot.send(event.message.room_id, f"echo: {event.message.body}")


if __name__ == "__main__":
    asyncio.run(main())
