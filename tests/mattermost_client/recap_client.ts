// Mattermost's own JavaScript client (Client4 of @mattermost/client, types of
// @mattermost/types) against a real `recapd serve`: every recap method Client4 has, each answer
// checked against the client's TypeScript types at run time, and the error path (ClientError).
// Compiled with `tsc --strict` (tests/test_mattermost_client.py); no type assertions anywhere:
// each runtime check is a type guard built from a spec that tsc checks against the type.
//
// Usage: node recap_client.js BASE_URL TOKEN CHANNEL_ID FORBIDDEN_CHANNEL_ID AGENT_ID

import {Client4, ClientError} from '@mattermost/client';
import type {StatusOK} from '@mattermost/types/client4';
import {RecapStatus} from '@mattermost/types/recaps';
import type {Recap, RecapChannel} from '@mattermost/types/recaps';

declare const process: {argv: string[]; exitCode: number | undefined};

// -- runtime checks tied to the types -------------------------------------------------------

type Guard<T> = (value: unknown, where: string, problems: string[]) => value is T;
type Required_<T> = {optional: false; guard: Guard<T>};
type Optional_<T> = {optional: true; guard: Guard<T>};

// One entry per key of T, optional exactly where T's key is optional, each guarding the key's
// type: tsc refuses a spec that forgets a field, adds one, or gets a type or optionality wrong.
type Spec<T> = {
    [K in keyof T]-?: {} extends Pick<T, K> ? Optional_<Exclude<T[K], undefined>> : Required_<T[K]>;
};

function req<T>(guard: Guard<T>): Required_<T> {
    return {optional: false, guard};
}

function opt<T>(guard: Guard<T>): Optional_<T> {
    return {optional: true, guard};
}

const isString: Guard<string> = (v, where, problems): v is string => {
    if (typeof v === 'string') {
        return true;
    }
    problems.push(`${where}: expected a string, got ${JSON.stringify(v)}`);
    return false;
};

const isBoolean: Guard<boolean> = (v, where, problems): v is boolean => {
    if (typeof v === 'boolean') {
        return true;
    }
    problems.push(`${where}: expected a boolean, got ${JSON.stringify(v)}`);
    return false;
};

const isNumber: Guard<number> = (v, where, problems): v is number => {
    if (typeof v === 'number' && Number.isFinite(v)) {
        return true;
    }
    problems.push(`${where}: expected a number, got ${JSON.stringify(v)}`);
    return false;
};

function isOneOf<T extends string>(values: readonly T[]): Guard<T> {
    return (v, where, problems): v is T => {
        if (values.some((allowed) => allowed === v)) {
            return true;
        }
        problems.push(`${where}: expected one of ${values.join(', ')}, got ${JSON.stringify(v)}`);
        return false;
    };
}

function isArrayOf<T>(item: Guard<T>): Guard<T[]> {
    return (v, where, problems): v is T[] => {
        if (!Array.isArray(v)) {
            problems.push(`${where}: expected an array, got ${JSON.stringify(v)}`);
            return false;
        }
        return v.every((x, i) => item(x, `${where}[${i}]`, problems));
    };
}

function isObjectOf<T>(spec: Spec<T>): Guard<T> {
    return (v, where, problems): v is T => {
        if (typeof v !== 'object' || v === null || Array.isArray(v)) {
            problems.push(`${where}: expected an object, got ${JSON.stringify(v)}`);
            return false;
        }
        const fields: Record<string, {optional: boolean; guard: Guard<unknown>}> = spec;
        let ok = true;
        for (const [key, field] of Object.entries(fields)) {
            const value: unknown = Reflect.get(v, key);
            if (value === undefined && field.optional) {
                continue;
            }
            if (value === undefined) {
                problems.push(`${where}.${key}: missing`);
                ok = false;
            } else if (!field.guard(value, `${where}.${key}`, problems)) {
                ok = false;
            }
        }
        return ok;
    };
}

const recapChannelSpec: Spec<RecapChannel> = {
    id: req(isString),
    recap_id: req(isString),
    channel_id: req(isString),
    channel_name: req(isString),
    highlights: req(isArrayOf(isString)),
    action_items: req(isArrayOf(isString)),
    source_post_ids: req(isArrayOf(isString)),
    create_at: req(isNumber),
};
const isRecapChannel = isObjectOf(recapChannelSpec);

const recapSpec: Spec<Recap> = {
    id: req(isString),
    user_id: req(isString),
    title: req(isString),
    create_at: req(isNumber),
    update_at: req(isNumber),
    delete_at: req(isNumber),
    read_at: req(isNumber),
    viewed_at: req(isNumber),
    total_message_count: req(isNumber),
    status: req(isOneOf(Object.values(RecapStatus))),
    bot_id: req(isString),
    channels: opt(isArrayOf(isRecapChannel)),
};
const isRecap = isObjectOf(recapSpec);

type MarkViewed = Awaited<ReturnType<Client4['markRecapsAsViewed']>>;
const isMarkViewed = isObjectOf<MarkViewed>({recap_ids: req(isArrayOf(isString))});
const isStatusOK = isObjectOf<StatusOK>({status: req(isOneOf(['OK']))});

// recapd's additions beside the original's fields (not in @mattermost/types).
type Cited = {text: string; post_ids: string[]};
type Owned = {text: string; owner: string; post_ids: string[]; explicit: boolean};
type RecapdChannelExtras = {
    highlight_items: Cited[];
    action_item_items: Owned[];
    open_questions: Cited[];
    notice: string;
};
const isCited = isObjectOf<Cited>({text: req(isString), post_ids: req(isArrayOf(isString))});
const isOwned = isObjectOf<Owned>({
    text: req(isString),
    owner: req(isString),
    post_ids: req(isArrayOf(isString)),
    explicit: req(isBoolean),
});
const isExtras = isObjectOf<RecapdChannelExtras>({
    highlight_items: req(isArrayOf(isCited)),
    action_item_items: req(isArrayOf(isOwned)),
    open_questions: req(isArrayOf(isCited)),
    notice: req(isString),
});

// -- the run ----------------------------------------------------------------------------------

const problems: string[] = [];
const done: string[] = [];

function expect(condition: boolean, what: string): void {
    if (!condition) {
        problems.push(what);
    }
}

function typed<T>(guard: Guard<T>, value: unknown, method: string): boolean {
    const before = problems.length;
    const ok = guard(value, method, problems);
    if (ok && problems.length === before) {
        done.push(method);
    }
    return ok;
}

async function clientError(
    call: () => Promise<unknown>,
    method: string,
    status: number,
    id: string,
): Promise<void> {
    try {
        await call();
        problems.push(`${method}: expected a ${status} ClientError, got a success`);
    } catch (err: unknown) {
        if (!(err instanceof ClientError)) {
            problems.push(`${method}: expected a ClientError, got ${String(err)}`);
            return;
        }
        const where = `${method} -> ${status}`;
        expect(err.status_code === status, `${where}: status_code ${err.status_code}`);
        expect(err.server_error_id === id, `${where}: server_error_id ${err.server_error_id}`);
        expect(typeof err.message === 'string' && err.message.length > 0, `${where}: message`);
        expect(typeof err.detailed_error === 'string', `${where}: detailed_error`);
        expect(typeof err.url === 'string' && err.url.includes('/api/v4/'), `${where}: url`);
        done.push(`${where} ${id}`);
    }
}

async function until(
    client: Client4,
    recapId: string,
    statuses: RecapStatus[],
): Promise<Recap> {
    const deadline = Date.now() + 30_000;
    for (;;) {
        const recap = await client.getRecap(recapId);
        if (statuses.includes(recap.status) || Date.now() > deadline) {
            return recap;
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
}

async function main(): Promise<void> {
    const [baseUrl, token, channelId, forbiddenChannelId, agentId] = process.argv.slice(2);
    const client = new Client4();
    client.setUrl(baseUrl.replace(/\/$/, ''));
    client.setToken(token);
    client.setIncludeCookies(false);

    const created: Recap = await client.createRecap({
        title: 'Dev',
        channel_ids: [channelId],
        agent_id: agentId,
    });
    typed(isRecap, created, 'createRecap');
    expect(created.status === RecapStatus.PENDING, `createRecap: status ${created.status}`);
    expect(created.channels === undefined, 'createRecap: channels sent before any were made');

    const finished = await until(client, created.id, [RecapStatus.COMPLETED, RecapStatus.FAILED]);
    typed(isRecap, finished, 'getRecap');
    expect(finished.status === RecapStatus.COMPLETED, `getRecap: status ${finished.status}`);
    const channels: RecapChannel[] = finished.channels ?? [];
    expect(channels.length === 1, `getRecap: ${channels.length} channels`);
    for (const ch of channels) {
        // Read as the web app reads them: strings.
        const words = ch.highlights.map((h) => h.trim().split(/\s+/).length);
        expect(words.length > 0 && words.every((n) => n > 0), 'getRecap: highlights');
        expect(ch.source_post_ids.length > 0, 'getRecap: source_post_ids');
        typed(isExtras, ch, 'getRecap (recapd extras)');
    }

    const listed: Recap[] = await client.getRecaps(0, 60);
    typed(isArrayOf(isRecap), listed, 'getRecaps');
    expect(listed.some((r) => r.id === created.id), 'getRecaps: the recap is listed');
    expect(listed.every((r) => r.channels === undefined), 'getRecaps: items carry channels');

    const read: Recap = await client.markRecapAsRead(created.id);
    typed(isRecap, read, 'markRecapAsRead');
    expect(read.read_at > 0, 'markRecapAsRead: read_at');

    const viewed = await client.markRecapsAsViewed();
    typed(isMarkViewed, viewed, 'markRecapsAsViewed');
    expect(viewed.recap_ids.includes(created.id), 'markRecapsAsViewed: recap_ids');

    const regenerated: Recap = await client.regenerateRecap(created.id);
    typed(isRecap, regenerated, 'regenerateRecap');
    expect(regenerated.id === created.id, 'regenerateRecap: id');
    const again = await until(client, created.id, [RecapStatus.COMPLETED, RecapStatus.FAILED]);
    expect(again.status === RecapStatus.COMPLETED, `regenerateRecap: then ${again.status}`);

    const deleted: StatusOK = await client.deleteRecap(created.id);
    typed(isStatusOK, deleted, 'deleteRecap');

    // The error path: every failure is a ClientError carrying the server's AppError.
    await clientError(() => client.getRecap(created.id), 'getRecap', 404, 'app.recap.get.app_error');
    await clientError(
        () => client.createRecap({title: '', channel_ids: [channelId], agent_id: agentId}),
        'createRecap',
        400,
        'api.context.invalid_body_param.app_error',
    );
    await clientError(
        () => client.createRecap({title: 'HR', channel_ids: [forbiddenChannelId], agent_id: agentId}),
        'createRecap',
        403,
        'app.recap.permission_denied',
    );
    await clientError(
        () => client.createRecap({title: 'Again', channel_ids: [channelId], agent_id: agentId}),
        'createRecap',
        429,
        'app.recap.cooldown_active.app_error',
    );
    const anonymous = new Client4();
    anonymous.setUrl(baseUrl.replace(/\/$/, ''));
    anonymous.setIncludeCookies(false);
    await clientError(() => anonymous.getRecaps(), 'getRecaps', 401, 'api.context.session_expired.app_error');
}

main().then(
    () => {
        console.log(JSON.stringify({done, problems}));
        process.exitCode = problems.length === 0 ? 0 : 1;
    },
    (err: unknown) => {
        const detail = err instanceof ClientError ? `${err.server_error_id} ${err.status_code}` : '';
        console.log(JSON.stringify({done, problems: [...problems, `${String(err)} ${detail}`]}));
        process.exitCode = 1;
    },
);
