%% counter_bench: gen_server throughput for the same counter runtime_bench
%% drives through meshd (tools/bench/README.md, section runtime_bench).
%%
%% The counter: each event's payload is a decimal integer as text (a binary,
%% surrounding ASCII whitespace ignored; any other payload counts as 1); it
%% is added to a running total (a 64-bit overflow is an error that leaves
%% the total unchanged) and the new total is emitted as decimal text.
%%
%% Rows:
%%   cast  gen_server:cast of one event at a time, in chunks of ?CHUNK casts,
%%         each chunk followed by one gen_server:call that waits until the
%%         server has applied the whole chunk (the timed region includes it).
%%         The emitted text goes nowhere (kept as the server's last output).
%%   call  gen_server:call round trips, one event each; the reply is the
%%         emitted text.
%%
%% Output (stdout): one line per row that runtime_bench parses,
%%   RESULT <row> <median events/s> <events, all trials> <seconds, all trials>
%% plus an INFO line with the OTP release and the scheduler count.
%%
%% Usage (see run.sh): erl -noshell -pa DIR -run counter_bench main SECONDS TRIALS
%% SECONDS is the time budget per row, split evenly over TRIALS timed runs;
%% the median of the per-trial rates is reported.

-module(counter_bench).
-behaviour(gen_server).

-export([main/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(CHUNK, 10000).
-define(POOL, 64).
-define(WARMUP, 20000).
-define(INT64_MAX, 9223372036854775807).
-define(INT64_MIN, -9223372036854775808).

%% -- the counter ------------------------------------------------------------

%% State: {Total, LastOutput}.
init([]) -> {ok, {0, <<"0">>}}.

handle_cast({add, Payload}, {Total, _} = S) ->
    case add(Payload, Total) of
        {ok, Next} -> {noreply, {Next, integer_to_binary(Next)}};
        {error, _} -> {noreply, S}
    end.

handle_call({add, Payload}, _From, {Total, _} = S) ->
    case add(Payload, Total) of
        {ok, Next} ->
            Out = integer_to_binary(Next),
            {reply, {ok, Out}, {Next, Out}};
        {error, _} = E ->
            {reply, E, S}
    end;
handle_call(total, _From, {Total, _} = S) ->
    {reply, Total, S}.

handle_info(_Msg, S) -> {noreply, S}.

add(Payload, Total) ->
    Delta = parse(Payload),
    Next = Total + Delta,
    if
        Delta > ?INT64_MAX; Delta < ?INT64_MIN -> {error, out_of_range};
        Next > ?INT64_MAX; Next < ?INT64_MIN -> {error, overflow};
        true -> {ok, Next}
    end.

parse(Payload) ->
    try binary_to_integer(Payload)
    catch error:badarg ->
        try binary_to_integer(string:trim(Payload))
        catch error:badarg -> 1
        end
    end.

%% -- the benchmark ------------------------------------------------------------

main([SecondsText, TrialsText]) ->
    Seconds = to_number(SecondsText),
    Trials = list_to_integer(TrialsText),
    Budget = Seconds / Trials,
    Pool = list_to_tuple([integer_to_binary(I) || I <- lists:seq(1, ?POOL)]),
    io:format("INFO otp ~s erts ~s schedulers ~p~n",
              [erlang:system_info(otp_release), erlang:system_info(version),
               erlang:system_info(schedulers_online)]),
    row(cast, Pool, Budget, Trials),
    row(call, Pool, Budget, Trials),
    halt(0);
main(_) ->
    io:format(standard_error, "usage: counter_bench main SECONDS TRIALS~n", []),
    halt(2).

to_number(Text) ->
    try list_to_float(Text)
    catch error:badarg -> float(list_to_integer(Text))
    end.

row(Kind, Pool, Budget, Trials) ->
    {ok, Pid} = gen_server:start(?MODULE, [], []),
    %% Payloads cycle from "1" again for every row (expected_sum relies on it).
    erase(counter_bench_i),
    %% Warm-up (untimed).
    W = run(Kind, Pid, Pool, warmup),
    Results = [run(Kind, Pid, Pool, Budget) || _ <- lists:seq(1, Trials)],
    Events = lists:sum([N || {N, _} <- Results]),
    Secs = lists:sum([T || {_, T} <- Results]),
    Rates = lists:sort([N / T || {N, T} <- Results, T > 0]),
    %% Check the arithmetic: every event i added (i rem ?POOL) + 1.
    Total = gen_server:call(Pid, total, infinity),
    Expected = expected_sum(element(1, W) + Events),
    case Total =:= Expected of
        true -> ok;
        false ->
            io:format(standard_error, "counter_bench: ~p total ~p, expected ~p~n",
                      [Kind, Total, Expected]),
            halt(1)
    end,
    gen_server:stop(Pid),
    io:format("RESULT ~p ~.1f ~p ~.6f~n", [Kind, median(Rates), Events, Secs]).

%% Events numbered 0..N-1 across the whole row (warm-up and trials): event i
%% carries (i rem ?POOL) + 1.
expected_sum(N) ->
    Full = N div ?POOL,
    Rest = N rem ?POOL,
    Full * (?POOL * (?POOL + 1) div 2) + Rest * (Rest + 1) div 2.

median(Rates) ->
    Len = length(Rates),
    case Len rem 2 of
        1 -> lists:nth(Len div 2 + 1, Rates);
        0 -> (lists:nth(Len div 2, Rates) + lists:nth(Len div 2 + 1, Rates)) / 2
    end.

%% Runs one trial (or the warm-up); returns {Events, Seconds}. The event
%% counter continues across calls through the process dictionary so payloads
%% keep cycling through the pool.
run(Kind, Pid, Pool, Budget) ->
    T0 = erlang:monotonic_time(nanosecond),
    Deadline = case Budget of
                   warmup -> undefined;
                   _ -> T0 + round(Budget * 1.0e9)
               end,
    N = loop(Kind, Pid, Pool, Deadline, 0),
    T1 = erlang:monotonic_time(nanosecond),
    {N, (T1 - T0) / 1.0e9}.

next_payload(Pool) ->
    I = case get(counter_bench_i) of undefined -> 0; X -> X end,
    put(counter_bench_i, I + 1),
    element(I rem ?POOL + 1, Pool).

loop(Kind, Pid, Pool, undefined, N) when N >= ?WARMUP ->
    _ = Kind, _ = Pid, _ = Pool, N;
loop(cast, Pid, Pool, Deadline, N) ->
    cast_chunk(Pid, Pool, ?CHUNK),
    _ = gen_server:call(Pid, total, infinity),
    continue(cast, Pid, Pool, Deadline, N + ?CHUNK);
loop(call, Pid, Pool, Deadline, N) ->
    call_chunk(Pid, Pool, 1000),
    continue(call, Pid, Pool, Deadline, N + 1000).

continue(Kind, Pid, Pool, undefined, N) ->
    loop(Kind, Pid, Pool, undefined, N);
continue(Kind, Pid, Pool, Deadline, N) ->
    case erlang:monotonic_time(nanosecond) >= Deadline of
        true -> N;
        false -> loop(Kind, Pid, Pool, Deadline, N)
    end.

cast_chunk(_, _, 0) -> ok;
cast_chunk(Pid, Pool, K) ->
    gen_server:cast(Pid, {add, next_payload(Pool)}),
    cast_chunk(Pid, Pool, K - 1).

call_chunk(_, _, 0) -> ok;
call_chunk(Pid, Pool, K) ->
    {ok, _} = gen_server:call(Pid, {add, next_payload(Pool)}, infinity),
    call_chunk(Pid, Pool, K - 1).
